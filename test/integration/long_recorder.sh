#!/usr/bin/env bash
# make check-long: test_recorder at full size, 100,000 watches in one
# process and 200 dumps while threads churn.
MANY_WATCHES=${MANY_WATCHES:-100000} HAMMER_DUMPS=${HAMMER_DUMPS:-200} \
	exec bash "$(dirname "$0")/test_recorder.sh"
