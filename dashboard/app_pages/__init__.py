"""The dashboard's pages (run by `st.navigation` in dashboard/app.py) and their shared pieces."""
