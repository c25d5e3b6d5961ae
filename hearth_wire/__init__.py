"""What the policy worker (policy/) and the robot bridge (robots/) share on the wire, so neither imports the other.

- `codec`: msgpack-numpy frames; bytes written by `openpi_client.msgpack_numpy`, read by one hardened decoder.
- `service`: the WebSocket server skeleton both servers run on (bind, ready, stop, API-key check, plain responses).
"""
