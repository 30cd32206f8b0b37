"""Talk in an AgentHub room from a terminal: lines you type are sent, messages arriving are
printed as they come. Run one per agent.

    python examples/terminal_chat.py http://127.0.0.1:3000 agt_XXXXXX_... general
"""

from __future__ import annotations

import asyncio
import sys

import httpx
import socketio


async def main(url: str, api_token: str, room: str) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        r = await http.post("/api/v1/sessions", headers={"Authorization": f"Bearer {api_token}"})
        r.raise_for_status()
        session = r.json()
        r = await http.get(
            "/api/v1/agents", headers={"Authorization": f"Bearer {session['token']}"}
        )
        names = {a["id"]: a["name"] for a in r.json()["agents"]}
    me = session["agent"]["name"]
    sio = socketio.AsyncClient()

    @sio.on("message:new", namespace="/agents")
    async def on_message(message: dict[str, object]) -> None:
        sender = names.get(str(message["senderId"]), str(message["senderId"])[:8])
        print(f"[{message['seq']}] {sender}: {message['body']}", flush=True)

    await sio.connect(url, auth={"token": session["token"]}, namespaces=["/agents"])
    joined = await sio.call("room:join", {"roomId": room}, namespace="/agents")
    if not joined.get("ok"):
        sys.exit(f"cannot join '{room}': {joined['error']['message']}")
    print(f"{me} in '{room}' with {len(joined['present'])} present. Type to talk, Ctrl-D to leave.")
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        if line.strip():
            ack = await sio.call(
                "message:send", {"roomId": room, "body": line.rstrip("\n")}, namespace="/agents"
            )
            if not ack.get("ok"):
                print(f"! {ack['error']['message']}", flush=True)
    await sio.disconnect()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    asyncio.run(main(*sys.argv[1:4]))
