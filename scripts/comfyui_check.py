"""Run an API-format workflow in a running ComfyUI and report what happened: the nodes as they run, the progress
messages each node sent, and the result. Optionally interrupt after some seconds, to check cancel.

Usage (with ComfyUI's Python, which has aiohttp):
    python scripts/comfyui_check.py workflows/api/dae_talker.json [--server http://127.0.0.1:8188] [--interrupt-after 10]
"""

import argparse
import asyncio
import json
import time
import uuid

import aiohttp


async def run(workflow: dict, server: str, interrupt_after: float | None) -> None:
    client = str(uuid.uuid4())
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{server}/ws?clientId={client}") as socket:
        async with session.post(f"{server}/prompt", json={"prompt": workflow, "client_id": client}) as reply:
            queued = await reply.json()
        if "error" in queued:
            print("refused:", json.dumps(queued, indent=1))
            return
        start, progress, interrupted = time.monotonic(), {}, False
        while True:
            elapsed = time.monotonic() - start
            if interrupt_after is not None and not interrupted and elapsed > interrupt_after:
                await session.post(f"{server}/interrupt")
                interrupted = True
                print(f"{elapsed:7.1f}s interrupt sent")
            try:
                message = await socket.receive(timeout=1)
            except asyncio.TimeoutError:
                continue
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(message.data)
            data = event["data"]
            if event["type"] == "progress":
                progress.setdefault(data["node"], []).append((round(elapsed, 1), data["value"], data["max"]))
            elif event["type"] == "executing" and data.get("node"):
                print(f"{elapsed:7.1f}s node {data['node']} ({workflow[data['node']]['class_type']})")
            elif event["type"] in ("execution_success", "execution_error", "execution_interrupted"):
                details = {key: data[key] for key in ("node_type", "exception_type", "exception_message") if key in data}
                print(f"{elapsed:7.1f}s {event['type']} {details or ''}")
                break
        for node, updates in progress.items():
            print(f"node {node}: {len(updates)} progress messages, first {updates[0]}, last {updates[-1]} (seconds, done, total)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workflow")
    parser.add_argument("--server", default="http://127.0.0.1:8188")
    parser.add_argument("--interrupt-after", type=float)
    args = parser.parse_args()
    with open(args.workflow) as file:
        asyncio.run(run(json.load(file), args.server, args.interrupt_after))


if __name__ == "__main__":
    main()
