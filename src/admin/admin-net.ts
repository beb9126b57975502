/** Loopback addresses: only this machine reaches them, so the admin API may speak plain HTTP. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
