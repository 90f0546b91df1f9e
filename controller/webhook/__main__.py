import sys

from controller.webhook.main import main

sys.exit(main())
