import sys

from eventd.cli import main

sys.exit(main())
