# The two commands a new user needs: `make demo` (the main job on built-in data) and `make test`.
# Torch is pinned to the CPU wheel that lies on these machines; any other request may pull a CUDA build.
PYTHON ?= python3
PIP = $(PYTHON) -m pip

.PHONY: install demo test lint bench

# Debian packages: Chromium + ChromeDriver (the report's browser test) and the real Fashion-MNIST (28x28 zoo).
APT_PACKAGES = chromium chromium-driver dataset-fashion-mnist
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

install:
	@dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES) >/dev/null; }
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e ".[test,ray]"

# The photo grid first (20 labelled ImageNet images from foolbox's wheel, fetched once, ~2 MB), then digits.
DEMO_PHOTO_METHODS = gradient_x_input,integrated_gradients,smoothgrad,deeplift,epsilon_lrp,guided_backprop

demo: install
	$(PYTHON) -m taylorlens explain --inputs imagenet --count 4 --methods $(DEMO_PHOTO_METHODS) --out results/explain_photos
	$(PYTHON) -m taylorlens explain --out results/explain
	$(PYTHON) -m taylorlens bench benchmarks/papers/quickstart.toml --out results/quickstart
	$(PYTHON) -m taylorlens report results/quickstart

test: install
	$(PYTHON) -m ruff check taylorlens tests benchmarks
	$(PYTHON) -m pytest

bench: install
	$(PYTHON) benchmarks/methods.py
