# The README's commands: `make demo` and `make test` (both install first).
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test clean-venv

install: $(STAMP)

$(STAMP): requirements/build.txt requirements/mmcv.txt requirements/runtime.txt requirements/tests.txt setup.py scripts/install.sh
	VENV=$(VENV) ./scripts/install.sh
	touch $@

demo: install
	$(PY) tools/demo.py

test: install
	OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -n 2 $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
