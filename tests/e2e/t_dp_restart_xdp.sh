#!/bin/bash
# t_dp_restart_xdp.sh — t_dp_restart.sh over net_af_xdp with the XDP program
# (loaded by DPDK, xdp_prog=): after kill -9 the program stays attached and
# must hold back the frames of flows with offsets instead of bypassing them.
RESTART_DRIVER=af_xdp exec bash "$(dirname "$0")/t_dp_restart.sh"
