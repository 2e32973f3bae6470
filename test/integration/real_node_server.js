// An HTTP server for test_real_node.sh.
// usage: node real_node_server.js PORT
// Listens on 127.0.0.1:PORT; GET /count answers the number of other
// requests served so far; any other request gets 200 and the body
// "hello from node PATH\n" (PATH with its query).  Prints "ready PORT" once
// listening; SIGTERM or SIGINT close it cleanly (exit 0, printing
// "stopped: served N").
'use strict';
const http = require('http');

const port = parseInt(process.argv[2], 10);
if (!(port > 0 && port < 65536)) {
	console.error('usage: node real_node_server.js PORT');
	process.exit(2);
}
let served = 0;
const server = http.createServer((req, res) => {
	if (req.url === '/count') {
		res.writeHead(200, { 'Content-Type': 'text/plain' });
		res.end(`${served}\n`);
		return;
	}
	served++;
	const body = `hello from node ${req.url}\n`;
	res.writeHead(200, { 'Content-Type': 'text/plain',
		'Content-Length': Buffer.byteLength(body) });
	res.end(body);
});
server.keepAliveTimeout = 5000;
server.listen(port, '127.0.0.1', () => console.log(`ready ${port}`));

function stop() {
	server.close(() => {
		console.log(`stopped: served ${served}`);
		process.exit(0);
	});
	server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
