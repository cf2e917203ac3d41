"""The Locust driver: Locust's master and workers send the lab's requests, bursts synchronised
across every worker (docs/locust.md). Only locustfile.py, master.py and worker.py import Locust or
gevent, and only Locust's own processes import them: importing Locust patches a whole process
with gevent."""
