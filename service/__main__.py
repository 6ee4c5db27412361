"""``python -m service`` serves; ``python -m service describe DIR`` writes a bare ONNX model's manifest."""

import sys

if len(sys.argv) > 1 and sys.argv[1] == "describe":
    from service.describe import main as describe

    sys.exit(describe(sys.argv[2:]))

from service.main import main

main()
