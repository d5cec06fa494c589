# `make install` sets up a fresh Debian machine (as root) and is safe to repeat.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Test files run side by side (pytest-xdist): the suite mostly waits on daemons and packets,
# so three workers fit two cores; tests/conftest.py keeps the host-OVS tests on one worker.
TEST_WORKERS ?= 3
APT_PACKAGES := openvswitch-switch iptables nftables conntrack iputils-ping iputils-arping \
	ethtool iproute2 procps util-linux kmod python3-venv python3-dev gcc \
	postgresql ovn-central ovn-host dnsmasq-base isc-dhcp-client radvd curl cloud-init systemd \
	chromium chromium-driver

# The topology page's graph library: Cytoscape.js from the npm registry (ui/package.json,
# locked), copied into the package (never committed). npm comes with a Node.js that has it
# (nodesource's), else from Debian's npm package.
UI_LIB := src/floatip/api/static/vendor/cytoscape.min.js

.PHONY: install demo test bench bench-neutron ovs clean keystone-venv tempest-venv tempest

install: .stamp-apt $(VENV)/.stamp ovs $(UI_LIB)

$(UI_LIB): ui/package.json ui/package-lock.json .stamp-apt
	command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
	cd ui && npm ci --no-audit --no-fund --silent
	mkdir -p $(dir $@)
	cp ui/node_modules/cytoscape/dist/cytoscape.min.js $@

.stamp-apt: Makefile
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null
	touch $@

$(VENV)/.stamp: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# OVS daemons: start them unless they already run (no systemd here).
ovs:
	@ovs-vsctl --timeout=2 show >/dev/null 2>&1 || \
		/usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null 2>&1
	@ovs-vsctl --timeout=5 show >/dev/null

demo: install
	$(VENV)/bin/floatip demo

# Everything: the pytest suite (kernel, OVN, Keystone, PostgreSQL: each started by its fixtures)
# and, beside it (its own Keystone, PostgreSQL and floatip server without an agent, on free
# loopback ports: ~1 minute off CI's wall time), Tempest's network API tests and Neutron's own
# (neutron-tempest-plugin); their output follows.
test: install keystone-venv tempest-venv
	@$(PY) tests/tempest/run.py > .tempest.log 2>&1 & tempest=$$!; \
	$(VENV)/bin/pytest -q -ra --durations=25 -n $(TEST_WORKERS) --dist loadgroup; pytest_rc=$$?; \
	wait $$tempest; tempest_rc=$$?; cat .tempest.log; \
	echo "pytest exit $$pytest_rc, tempest exit $$tempest_rc"; \
	test $$pytest_rc -eq 0 && test $$tempest_rc -eq 0

bench: install
	$(PY) benchmarks/run.py
	$(PY) benchmarks/control_plane.py --routers 1 --fips 100
	$(PY) benchmarks/control_plane.py --routers 100 --fips 100
	$(PY) benchmarks/control_plane.py --routers 1 --fips 10000
	$(PY) benchmarks/control_plane.py --routers 100 --fips 10000
	$(PY) benchmarks/control_plane.py --table
	$(PY) benchmarks/ovn_bench.py --fips 100,10000 --kernel-fips 100
	$(PY) benchmarks/ovn_failover.py -n 10
	$(PY) benchmarks/firewall_bench.py
	$(PY) benchmarks/ovn_sg_bench.py
	$(PY) benchmarks/pf_bench.py
	$(PY) benchmarks/qos_bench.py --addresses 1000
	$(PY) benchmarks/cli_latency.py --runs 20
	$(PY) benchmarks/pg_churn.py --all --clients 32 --seconds 60

# Neutron's own `openvswitch` firewall driver on the same workload as firewall_bench.py, for
# the figures beside floatip's (docs/firewall.md); not in `make bench`: its venv is ~300 MB.
NVENV := .venv-neutron

bench-neutron: install $(NVENV)/.stamp
	$(NVENV)/bin/python benchmarks/neutron_fw_bench.py

$(NVENV)/.stamp:
	test -x $(NVENV)/bin/python || python3 -m venv $(NVENV)
	$(NVENV)/bin/pip install -q --upgrade pip
	$(NVENV)/bin/pip install -q 'neutron==29.*'
	touch $@

# Keystone and Tempest live in their own virtualenvs (their pins must not touch floatip's).
KVENV := .venv-keystone
TVENV := .venv-tempest

keystone-venv: $(KVENV)/.stamp
$(KVENV)/.stamp:
	test -x $(KVENV)/bin/python || python3 -m venv $(KVENV)
	$(KVENV)/bin/pip install -q --upgrade pip
	$(KVENV)/bin/pip install -q keystone gunicorn python-openstackclient psycopg2-binary
	touch $@

# Tempest and Neutron's own API suite (neutron-tempest-plugin), both from PyPI
tempest-venv: $(TVENV)/.stamp-plugin
$(TVENV)/.stamp-plugin:
	test -x $(TVENV)/bin/python || python3 -m venv $(TVENV)
	$(TVENV)/bin/pip install -q --upgrade pip
	$(TVENV)/bin/pip install -q tempest neutron-tempest-plugin
	touch $@

# Tempest's tempest.api.network and neutron_tempest_plugin.api against a throw-away Keystone
# and floatip server (tests/tempest/exclude.txt: what is left out and why).
tempest: install keystone-venv tempest-venv
	$(PY) tests/tempest/run.py

clean:
	rm -rf $(VENV) $(KVENV) $(TVENV) $(NVENV) .stamp-apt ui/node_modules $(UI_LIB)
