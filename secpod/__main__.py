import sys

from secpod.cli import main

sys.exit(main())
