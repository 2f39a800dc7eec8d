"""The offline demo: synthetic shapes (shapes.py), the tiny Qwen2-VL and its processor (model.py),
the script that trains the shipped English base (build_base.py) and the LoRA experiment that chose
recipes/demo-shapes.yaml's settings (check_adapt.py). Importing this package imports nothing heavy."""
