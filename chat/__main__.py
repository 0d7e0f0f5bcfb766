import sys

from chat.cli import main

sys.exit(main())
