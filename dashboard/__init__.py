"""MTL Lab's Streamlit dashboard: `streamlit run dashboard/app.py`.

The dashboard holds no training logic and no metric maths: it builds an
`ExperimentConfig`, starts and cancels runs through `mtl_core.jobs`, reads the run
store and draws. `charts` turns data into plotly figures (pure, tested without
Streamlit); `state` maps query parameters and widgets to configs.
"""
