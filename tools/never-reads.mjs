// A WebSocket client that joins a room and never reads a byte: the slow
// consumer of docs/PERFORMANCE.md. Usage: node tools/never-reads.mjs PORT ROOM [NAME] [SECONDS]
import { rawConnect } from '../tests/lib/rawws.mjs';

const [port = '9200', room = 'sc-0', name = 'never-reads', seconds = '120'] = process.argv.slice(2);
const sock = await rawConnect(Number(port), `/ws?room=${encodeURIComponent(room)}&username=${encodeURIComponent(name)}`, { noRead: true });
console.error(`joined ${room} as ${name}; not reading`);
setTimeout(() => { sock.destroy(); process.exit(0); }, Number(seconds) * 1000);
