import sys

from mtl_core.cli import main

sys.exit(main())
