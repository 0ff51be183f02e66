"""Local rehearsal: emulated inference servers behind a real nginx on 127.0.0.1.

No AWS account or accelerator needed. ``N`` emulated servers (one host process,
one aiohttp server each) speak the OpenAI completions API and pace their tokens
like continuous- or static-batching accelerators
(:class:`~inferfleet.cli.sizing.profile.ServerProfile`); a real nginx
in front routes by ``least_conn`` (least outstanding requests), ``random`` or
round robin (:mod:`.nginx`). Everything they answer is marked emulated.

From Python (what ``inferfleet bench --local`` uses)::

    from inferfleet.cli.local.fleet import LocalFleet

    with LocalFleet(servers=5, routing="least_outstanding_requests") as fleet:
        fleet.url                  # nginx front, http://127.0.0.1:PORT
        fleet.instance_urls        # each emulator directly
        fleet.set_routing("random")

From the shell, left running in the background::

    inferfleet local up --servers 5 --routing random
    inferfleet local status --json
    inferfleet local down
"""
