"""The simulated IEEE 2030.5 utility server (issue 7, scope 6): a pure state model of a head-end
(``state``), scenario files with a timeline of utility actions (``scenario``), switchable real-server
quirks (``quirks``), and the server on the wire over the project's own mutual TLS and HTTP/1.1 +
HTTP/2 sessions, recording every request (``server``). See ARCHITECTURE.md, "Simulated utility
server".

In memory (simulations and tests, trio's autojump clock)::

    send, accept = actors.pipe.pipe_listener()
    server = SimUtilityServer(demo_scenario(), tls_material, clock=SimClock(epoch))
    await task_group.start(server.serve_pipes, accept)
    client = HttpsClient("utility", 443, client_context(device), connector=pipe_connector(send))

On loopback TCP (``sep2gw run``, ``sep2gw sim-server``)::

    server = SimUtilityServer(scenario, server_material(pki_dir), clock=SimClock.for_scenario(
        scenario, wall_time))
    port = await task_group.start(server.serve_tcp)      # host="127.0.0.1", port=0 by default
    # the gateway's DeviceCapability URL: f"https://127.0.0.1:{port}/dcap"
"""

from sep2gw.simserver.quirks import Quirks, apply_text_quirks
from sep2gw.simserver.scenario import (
    WORLD_FAULTS,
    Action,
    BatteryFault,
    CancelControl,
    CancelPriceInterval,
    ChangeControl,
    ChangeDefault,
    ClockSkew,
    CrashGateway,
    CreateControl,
    CreatePriceInterval,
    DeleteControl,
    FailRequests,
    GatewaySettings,
    LoseMirrors,
    ModbusTimeout,
    Modes,
    OperatorCommand,
    ProgramSpec,
    RemoveProgram,
    RestoreProgram,
    Scenario,
    ScenarioError,
    ServerSettings,
    SetPin,
    SetPollRate,
    SetPostRate,
    SlowResponses,
    TlsFail,
    demo_scenario,
    load_scenario,
    parse_scenario,
    under_version,
)
from sep2gw.simserver.server import (
    RecordedRequest,
    ServerClock,
    SimClock,
    SimUtilityServer,
    server_material,
)
from sep2gw.simserver.state import SimReply, UtilityState, event_status

__all__ = [
    "WORLD_FAULTS",
    "Action",
    "BatteryFault",
    "CancelControl",
    "CancelPriceInterval",
    "ChangeControl",
    "ChangeDefault",
    "ClockSkew",
    "CrashGateway",
    "CreateControl",
    "CreatePriceInterval",
    "DeleteControl",
    "FailRequests",
    "LoseMirrors",
    "ModbusTimeout",
    "OperatorCommand",
    "Modes",
    "ProgramSpec",
    "Quirks",
    "RecordedRequest",
    "RemoveProgram",
    "RestoreProgram",
    "Scenario",
    "ScenarioError",
    "ServerClock",
    "GatewaySettings",
    "ServerSettings",
    "SetPin",
    "SetPollRate",
    "SetPostRate",
    "SimClock",
    "SimReply",
    "SimUtilityServer",
    "SlowResponses",
    "TlsFail",
    "UtilityState",
    "apply_text_quirks",
    "demo_scenario",
    "event_status",
    "load_scenario",
    "parse_scenario",
    "under_version",
    "server_material",
]
