"""The model side of voxprompt: pre-trained parts, the projector and the composed speech-LLM.

Modules that need PyTorch import it themselves; `ctranslate2`, `assets` and `frontend`
are numpy-only so that the runtime can build the default model without torch.
"""
