"""Helper processes the censor runs on a router: an NFQUEUE injector, a TLS interception proxy,
a TCP relay. Each is ``python -m probe.lab.simnet.devices.NAME --config FILE --ready-file PATH``,
run inside the router's namespace; it writes the ready file once it is serving and stops
cleanly on SIGTERM."""
