import net from 'node:net';

/** A port the OS says is free now (port 0, read back); another process may take it
 * before we do, so callers that cannot listen on port 0 themselves retry on a collision. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
