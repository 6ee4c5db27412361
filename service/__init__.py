"""seqserve HTTP service: ONNX Runtime models behind FastAPI. Import-time side effects: none."""

__version__ = "0.1.0"
