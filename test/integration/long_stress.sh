#!/usr/bin/env bash
# make check-long: test_stress for 120 s (make check runs it for 10 s).
STRESS_SECONDS=${STRESS_SECONDS:-120} exec bash "$(dirname "$0")/test_stress.sh"
