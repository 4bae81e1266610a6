"""Export: trained checkpoints to the runtime's formats (encoder.onnx, a GGUF LLM, manifest.json).

The default model is built without torch (`default_model`); PyTorch checkpoints go through
the modules that import torch themselves.
"""
