from tether.sync import ServerConnection, serve


def echo(websocket: ServerConnection) -> None:
    for message in websocket:
        websocket.send(message)


with serve(echo, "127.0.0.1", 8766) as server:
    server.serve_forever()
