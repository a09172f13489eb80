# The README's commands: `make demo` and `make test` (both install first).
# `make install` installs the exact versions of requirements/constraints.txt.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test clean-venv

install: $(STAMP)

$(STAMP): requirements/constraints.txt requirements/build.txt requirements/mmcv.txt \
		requirements/runtime.txt requirements/tools.txt requirements/tests.txt \
		setup.py scripts/install.sh
	VENV=$(VENV) ./scripts/install.sh
	touch $@

demo: install
	$(PY) tools/demo.py

test: install
	OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -n 2 $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
