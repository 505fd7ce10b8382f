# The two commands (both set up .venv idempotently first):
#   make demo   - the main job on built-in default data
#   make test   - the test suite
.PHONY: setup demo test
setup:
	bash scripts/setup_venv.sh
demo: setup
	.venv/bin/fastmri-untrained demo --out outputs/demo
test: setup
	.venv/bin/python -m pytest -q
