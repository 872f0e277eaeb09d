import sys

from engine.train.cli import main

sys.exit(main())
