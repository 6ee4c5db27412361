"""Training side of seqserve: PyTorch data loading, LSTM modules, loops, evaluation and ONNX export.

Nothing in here is imported by ``service/``; the artifact manifest (``model.json``) is the only contract.
"""
