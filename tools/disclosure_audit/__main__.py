import sys

from tools.disclosure_audit.cli import main

sys.exit(main())
