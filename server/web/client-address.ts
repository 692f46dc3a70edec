/**
 * The address a request came from, as the web's own server saw its socket: the custom
 * server (server/web/main.ts) writes it into CLIENT_ADDRESS_HEADER, replacing whatever a
 * client sent under that name, before Next sees the request.
 */
export const CLIENT_ADDRESS_HEADER = "x-guesthouse-client-address";

export function clientAddress(headers: { get(name: string): string | null }): string | null {
  return headers.get(CLIENT_ADDRESS_HEADER);
}
