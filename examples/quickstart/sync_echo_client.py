from tether.sync import connect

with connect("ws://127.0.0.1:8766/") as websocket:
    websocket.send("Hello!")
    print(websocket.recv())
