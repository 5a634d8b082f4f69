'use strict';
// The peer most teams would pick: Socket.IO 4.8 with @socket.io/redis-adapter on
// node-redis, in its documented default set-up (node server.js CONFIG_JSON).
// Like bench/peer.py it checks the client's JWT on connect (HS256, exp and sub
// required), puts the socket in its user's room and counts the ids of the `ack`
// events it receives (GET /stats). A producer elsewhere (producer.js) emits to the
// rooms through @socket.io/redis-emitter; delivery is best effort (Redis pub/sub).

const http = require('node:http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { createClient } = require('redis');
const jwt = require('jsonwebtoken');
const { emit, commands } = require('./common');

const cfg = JSON.parse(process.argv[2]);

async function main() {
  const pubClient = createClient({ url: cfg.redis_url });
  const subClient = pubClient.duplicate();
  pubClient.on('error', (e) => console.error('redis (pub):', e.message));
  subClient.on('error', (e) => console.error('redis (sub):', e.message));
  await Promise.all([pubClient.connect(), subClient.connect()]);

  const counts = { acked: 0, connected: 0 };
  const httpServer = http.createServer((req, res) => {
    // Socket.IO answers its own path first; everything else comes here.
    const body = req.url === '/healthz' ? { status: 'ok' } : req.url === '/stats' ? counts : null;
    const text = JSON.stringify(body || { error: { code: 'not_found', detail: req.url } });
    res.writeHead(body ? 200 : 404, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  });
  const io = new Server(httpServer, {
    adapter: createAdapter(pubClient, subClient),
    serveClient: false,
  });

  io.use((socket, next) => {
    const token = (socket.handshake.auth || {}).token || '';
    try {
      const claims = jwt.verify(token, cfg.secret, { algorithms: ['HS256'] });
      if (typeof claims.sub !== 'string' || claims.exp === undefined) {
        throw new Error('exp and sub are required');
      }
      socket.data.user = claims.sub;
      next();
    } catch (e) {
      next(new Error(`unauthorized: ${e.message}`));
    }
  });

  io.on('connection', (socket) => {
    socket.join(socket.data.user);
    counts.connected += 1;
    socket.on('ack', (data) => {
      counts.acked += ((data && data.ids) || []).length;
    });
    socket.on('disconnect', () => {
      counts.connected -= 1;
    });
  });

  httpServer.listen({ port: cfg.port, host: '127.0.0.1', backlog: 4096 }, () => emit('listening'));

  commands(async (line) => {
    if (line !== 'stop') return;
    emit('done', counts);
    io.close();
    await Promise.allSettled([pubClient.quit(), subClient.quit()]);
    process.exit(0);
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
