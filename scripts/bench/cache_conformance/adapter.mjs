// The suite's client talks to one base URL: its test requests (/test/...) must go through the
// cache under test and its set-up requests (PUT /config/..., GET /state/...) to the suite's
// server. This adapter listens on a port, sends /config/ and /state/ to the server and
// everything else to the cache's base URL (the cache node serves an origin under
// /o/<origin-id>/; nginx and Varnish at their root), passing methods, headers (duplicates and
// order kept) and bodies through verbatim both ways. It keeps nothing: it adds no cache.
//   node adapter.mjs <listen-port> <server-base-url> <cache-base-url>
import http from 'node:http'

const [listenPort, serverBase, cacheBase] = process.argv.slice(2)
if (!listenPort || !serverBase || !cacheBase) {
  console.error('usage: node adapter.mjs <listen-port> <server-base-url> <cache-base-url>')
  process.exit(2)
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })

function forward (request, response) {
  const direct = request.url.startsWith('/config/') || request.url.startsWith('/state/')
  const target = new URL((direct ? serverBase : cacheBase) + request.url)
  const headers = []
  for (let i = 0; i < request.rawHeaders.length; i += 2) {
    if (request.rawHeaders[i].toLowerCase() === 'host') continue
    headers.push(request.rawHeaders[i], request.rawHeaders[i + 1])
  }
  headers.push('Host', target.host)
  const upstream = http.request({
    agent,
    method: request.method,
    hostname: target.hostname,
    port: target.port,
    path: target.pathname + target.search,
    headers
  }, (answer) => {
    response.writeHead(answer.statusCode, answer.statusMessage, answer.rawHeaders)
    answer.pipe(response)
  })
  upstream.setTimeout(60000, () => upstream.destroy(new Error('upstream timeout')))
  upstream.on('error', (err) => {
    if (!response.headersSent) {
      response.writeHead(502, { 'Content-Type': 'text/plain' })
      response.end(`adapter: ${err.message}\n`)
    } else {
      response.destroy()
    }
  })
  request.pipe(upstream)
}

const server = http.createServer(forward)
server.keepAliveTimeout = 60000
server.listen(Number(listenPort), '127.0.0.1', () => {
  console.log(`adapter listening on 127.0.0.1:${listenPort}: tests to ${cacheBase}, set-up to ${serverBase}`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
