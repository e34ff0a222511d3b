import sys

from eventd.cli.main import main

sys.exit(main())
