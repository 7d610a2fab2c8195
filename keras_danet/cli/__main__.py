"""`python -m keras_danet.cli`, as the `keras-danet` command."""

import sys

from keras_danet.cli import main

sys.exit(main())
