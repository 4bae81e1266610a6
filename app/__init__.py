"""voxprompt: on-device speech recognition where a speech encoder prompts an LLM.

The runtime (this package) needs numpy, ONNX Runtime and llama-cpp-python only; PyTorch lives in
the optional `voxprompt.models` training/reference code and `voxprompt.export` of PyTorch checkpoints.
"""
__version__ = "0.1.0"
