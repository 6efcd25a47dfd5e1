"""The contenders of bench/leakbench.py: one module each, one decision rule each (in its docstring)."""
