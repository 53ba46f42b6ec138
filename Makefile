# Trail: the two commands are `make run` and `make test` (see README.md).
# Both install missing Debian packages first (as root), build, and start a local
# nats-server + PostgreSQL under .dev/ (make run) or a throw-away stack on free
# ports (make test).

BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
DEV_NATS_PORT ?= 4222
DEV_PG_PORT ?= 5432
export DEV_NATS_PORT DEV_PG_PORT

.PHONY: all deps build run stop test unit clean stack

all: build

deps:
	@scripts/deps.sh

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS)

stack: deps
	@NATS_PORT=$(DEV_NATS_PORT) PG_PORT=$(DEV_PG_PORT) scripts/stack.sh start

run: build stack
	@scripts/run-dev.sh

stop:
	@scripts/stack.sh stop

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure --timeout 900

unit: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -L unit

clean:
	rm -rf $(BUILD_DIR)
