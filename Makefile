# The README's two commands: `make run` and `make test`. Each creates .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean wheat-model

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job on the simulated rig; its data stays in out/ inside the checkout.
# The first run builds the default maize model (a few minutes) and caches it.
DEMO_DATA := $(CURDIR)/out/data
run: $(STAMP)
	SEEDQA_DATA_DIR=$(DEMO_DATA) $(BIN)/seedqa-models recipe build maize --if-missing
	SEEDQA_DATA_DIR=$(DEMO_DATA) $(BIN)/seedqa capture --rig simulated \
		--recipe maize --lot DEMO-LOT --sample S-0001 --operator Demo --out out/run

# Build and install the wheat recipe's model from ../shared/data/wheat-grains.
wheat-model: $(STAMP)
	SEEDQA_DATA_DIR=$(DEMO_DATA) $(BIN)/seedqa-models recipe build wheat \
		--data $(CURDIR)/../shared/data/wheat-grains

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/segmentation.py

clean:
	rm -rf $(VENV) out build *.egg-info
