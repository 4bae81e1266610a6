import sys

from voxprompt.cli import main

sys.exit(main())
