"""The offline demo: synthetic shapes (shapes.py), the tiny Qwen2-VL and its processor (model.py), and a
Qwen2-VL at real widths for measurements (realshape.py). The script that trains the shipped English base
and the experiment that chose recipes/demo-shapes.yaml's settings live in tools/.

May import the standard library, torch/transformers inside functions, and wizard.errors; nothing above it.
Importing this package imports nothing heavy."""
