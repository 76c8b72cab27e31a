// tfe-accel: a user-space link shaper for TCP on loopback (plain C++17 + POSIX, no TensorFlow).
//
// Each Route is one directed "link" between two players: a listener (in the network namespace of
// the player that connects) that forwards every accepted connection to a target address (in the
// namespace of the player that serves), adding per direction
//   * a one-way delay: every byte is delivered `delay` after it would have left the link, and
//   * a rate cap: a token bucket of `burst` bytes refilled at `rate` bytes/s (a link of that
//     bandwidth: a chunk of n bytes occupies it for n / rate seconds once the bucket is empty).
// Memory is bounded: at most `queue_limit` bytes wait per direction of a connection; when that is
// full the relay stops reading and TCP's own flow control pushes back on the sender.
//
// The kernel has no netem qdisc here, and asyncio's timers round to 1 ms (a 100 us call_later
// fires after ~1.1 ms), so this relay is C++ with absolute-deadline sleeps at 1 ns timer slack.
//
// Safety: every listen and target address must be a loopback address (127.0.0.0/8, ::1 or
// "localhost"); a namespace is given as a path (/proc/PID/ns/net) and entered only by the
// relay's own threads (setns), never by the caller's thread.
#ifndef TFE_ACCEL_CC_NET_LINK_SHAPER_H_
#define TFE_ACCEL_CC_NET_LINK_SHAPER_H_

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace tfe_accel {
namespace net {

// A bad argument or a failure to set up (message names the route and the reason).
struct NetError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Shape {                   // one direction of one link
  double delay_s = 0.0;          // one-way delay, seconds (>= 0)
  double rate_bytes_per_s = 0.0; // 0: no rate cap
  std::int64_t burst_bytes = 16384;  // token-bucket depth (used only with a rate cap)
  // Directions with the same non-empty link name share one token bucket (a link carries every
  // connection between two players); "" = a bucket of this connection's own.
  std::string link;
};

struct Route {
  std::string name;          // e.g. "server0->server1", used in errors and statistics
  std::string listen_netns;  // "" = the namespace the shaper was created in; else /proc/PID/ns/net
  std::string listen_host;   // loopback address
  int listen_port = 0;       // 0 = any free port (see LinkShaper::Ports)
  std::string target_netns;
  std::string target_host;   // loopback address
  int target_port = 0;
  Shape forward;             // bytes from the connecting side to the target
  Shape backward;            // bytes from the target back to the connecting side
};

struct RouteStats {
  std::string name;
  int listen_port = 0;
  std::uint64_t connections = 0;      // accepted and connected to the target
  std::uint64_t failed_connects = 0;  // accepted, but the target refused (closed at once)
  std::uint64_t bytes_forward = 0;
  std::uint64_t bytes_backward = 0;
  std::uint64_t max_queued_bytes = 0; // the most bytes waiting in one direction at once
  std::string last_error;             // why the last failed connect failed ("" if none)
};

// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopback(const std::string& host);

// Every listener is bound (and listening) when the constructor returns; NetError otherwise.
class LinkShaper {
 public:
  LinkShaper(std::vector<Route> routes, std::int64_t queue_limit_bytes);
  ~LinkShaper();
  LinkShaper(const LinkShaper&) = delete;
  LinkShaper& operator=(const LinkShaper&) = delete;

  void Start();  // starts accepting (idempotent)
  void Stop();   // closes listeners and every relayed connection, joins all threads (idempotent)
  std::vector<int> Ports() const;  // bound listen port of each route, in order
  std::vector<RouteStats> Stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- measurement helpers (tests and `tfe-accel bench network`) ----------------------------------
// A probe server: each request is a 16-byte header (payload length, reply length, little-endian
// u64) followed by the payload; the server answers with `reply length` bytes once it has read the
// whole payload. One thread per connection. Binds host:port (port 0 = any) in the caller's
// namespace.
class ProbeServer {
 public:
  ProbeServer(const std::string& host, int port);
  ~ProbeServer();
  int port() const;
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Opens one connection to host:port and issues `count` requests of (send_bytes, reply_bytes),
// back to back; returns each request's wall time in seconds (from the first byte sent to the
// last byte received). `timeout_s` bounds every blocking step (NetError on expiry).
std::vector<double> ProbeRequests(const std::string& host, int port, std::int64_t send_bytes,
                                  std::int64_t reply_bytes, int count, double timeout_s);

}  // namespace net
}  // namespace tfe_accel

#endif  // TFE_ACCEL_CC_NET_LINK_SHAPER_H_
