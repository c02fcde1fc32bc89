"""Shared test setup: pytest puts this directory on sys.path (rootdir-relative "prepend"
import mode), so every test module, tests/kernels included, can ``from parity import ...``."""
