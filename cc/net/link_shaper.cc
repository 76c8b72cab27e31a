// tfe-accel: the user-space link shaper (see link_shaper.h).
#include "link_shaper.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <thread>

namespace tfe_accel {
namespace net {

namespace {

constexpr std::int64_t kChunk = 64 * 1024;  // the most bytes read (and delivered) at once
constexpr double kConnectTimeoutS = 5.0;
constexpr std::int64_t kSpinMarginNs = 20000;  // spin at least this long before a deadline
constexpr double kMaxLateNs = 500000;         // lateness estimates are capped (a stall is no trend)

std::int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

std::string ErrnoText(int e) { return std::strerror(e); }

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
};

NetError NotLoopback(const std::string& what, const std::string& host) {
  return NetError(what + ": " + host + " is not a loopback address (the shaper relays on loopback "
                  "only: 127.0.0.0/8, ::1, localhost)");
}

SockAddr LoopbackAddr(const std::string& host, int port, const std::string& what) {
  SockAddr a;
  const std::string h = host == "localhost" ? "127.0.0.1" : host;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
  if (inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
    if ((ntohl(v4->sin_addr.s_addr) >> 24) != 127)
      throw NotLoopback(what, host);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    a.len = sizeof(sockaddr_in);
    a.family = AF_INET;
    return a;
  }
  if (inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
    if (!IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr))
      throw NotLoopback(what, host);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    a.len = sizeof(sockaddr_in6);
    a.family = AF_INET6;
    return a;
  }
  throw NetError(what + ": " + (host.empty() ? std::string("empty host") : "'" + host + "'") +
                 " is not a numeric loopback address (use 127.x.y.z, ::1 or localhost)");
}

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int Listen(const SockAddr& a, const std::string& what) {
  int fd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw NetError(what + ": socket: " + ErrnoText(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<const sockaddr*>(&a.ss), a.len) != 0 || listen(fd, 128) != 0) {
    const int e = errno;
    close(fd);
    throw NetError(what + ": cannot listen: " + ErrnoText(e));
  }
  return fd;
}

int BoundPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

// Connects with a deadline; returns the socket or -1 (errno set).
int ConnectWithin(const SockAddr& a, double timeout_s) {
  int fd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&a.ss), a.len) != 0) {
    if (errno != EINPROGRESS) {
      const int e = errno;
      close(fd);
      errno = e;
      return -1;
    }
    pollfd p{fd, POLLOUT, 0};
    const int rc = poll(&p, 1, static_cast<int>(timeout_s * 1000));
    int err = 0;
    socklen_t len = sizeof(err);
    if (rc <= 0) err = rc == 0 ? ETIMEDOUT : errno;
    else getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      close(fd);
      errno = err;
      return -1;
    }
  }
  const int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

// setns into `fd` (a network namespace) for the calling thread, which the shaper owns.
void EnterNetns(int ns_fd, const std::string& path, const std::string& what) {
  if (setns(ns_fd, CLONE_NEWNET) != 0) {
    const int e = errno;
    throw NetError(what + ": cannot enter network namespace " + path + ": " + ErrnoText(e) +
                   (e == EPERM ? " (needs CAP_SYS_ADMIN)" : ""));
  }
}

void CheckShape(const Shape& s, const std::string& what) {
  if (!std::isfinite(s.delay_s) || s.delay_s < 0 || s.delay_s > 10)
    throw NetError(what + ": delay must be in [0, 10] s, got " + std::to_string(s.delay_s));
  if (!std::isfinite(s.rate_bytes_per_s) || s.rate_bytes_per_s < 0)
    throw NetError(what + ": rate must be >= 0 bytes/s (0: no cap), got " +
                   std::to_string(s.rate_bytes_per_s));
  if (s.rate_bytes_per_s > 0 && s.rate_bytes_per_s < 1000)
    throw NetError(what + ": rate below 1000 bytes/s is not a link (got " +
                   std::to_string(s.rate_bytes_per_s) + ")");
  if (s.burst_bytes < 1)
    throw NetError(what + ": burst must be >= 1 byte, got " + std::to_string(s.burst_bytes));
}

struct Counters {
  std::atomic<std::uint64_t> connections{0}, failed{0}, fwd{0}, bwd{0}, max_queued{0};
  void NoteQueued(std::uint64_t q) {
    std::uint64_t cur = max_queued.load(std::memory_order_relaxed);
    while (q > cur && !max_queued.compare_exchange_weak(cur, q)) {
    }
  }
};

// The rate state of one directed link (GCRA: theoretical arrival time of its backlog, in ns).
struct Bucket {
  std::mutex mu;
  double tat = 0;
};

// One direction of one relayed connection, run by one thread: it reads what arrives, stamps each
// chunk with its delivery time and delivers it then, sleeping in ppoll (nanosecond timeout, 1 ns
// timer slack) until the next chunk is due or more bytes arrive. One thread per direction and no
// hand-off between threads keeps the relay's own latency to a few microseconds. The rate cap is a
// token bucket in GCRA form: `tat` is the theoretical arrival time of the link's backlog, and a
// chunk of n bytes leaves once tat - burst/rate <= now.
class Pump {
 public:
  Pump(int src, int dst, const Shape& shape, std::shared_ptr<Bucket> bucket, std::int64_t limit,
       std::atomic<std::uint64_t>* bytes, Counters* counters)
      : src_(src), dst_(dst), shape_(shape), bucket_(std::move(bucket)), limit_(limit),
        bytes_(bytes), counters_(counters) {}

  void Run() {
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  // wake at the deadline, not up to 50 us after it
    const double ns_per_byte = shape_.rate_bytes_per_s > 0 ? 1e9 / shape_.rate_bytes_per_s : 0.0;
    const double burst_ns = shape_.burst_bytes * ns_per_byte;
    const std::int64_t delay_ns = static_cast<std::int64_t>(std::llround(shape_.delay_s * 1e9));
    std::deque<Chunk> q;
    std::int64_t queued = 0, last_due = 0, eof_due = 0;
    double late_ns = 30000;
    bool open = true, error = false;
    std::vector<char> buf(static_cast<size_t>(kChunk));
    for (;;) {
      std::int64_t now = NowNs();
      while (!q.empty() && q.front().due <= now) {
        Chunk& ch = q.front();
        if (!WriteAll(dst_, ch.data)) {  // the receiving side is gone: end both directions
          shutdown(dst_, SHUT_RDWR);
          shutdown(src_, SHUT_RDWR);
          return;
        }
        bytes_->fetch_add(ch.data.size(), std::memory_order_relaxed);
        queued -= static_cast<std::int64_t>(ch.data.size());
        q.pop_front();
        now = NowNs();
      }
      if (!open && q.empty() && eof_due <= now) {
        if (error) {
          shutdown(dst_, SHUT_RDWR);
          shutdown(src_, SHUT_RDWR);
        } else {
          shutdown(dst_, SHUT_WR);
        }
        return;
      }
      const bool room = open && queued + kChunk <= limit_;
      pollfd p{src_, POLLIN, 0};
      timespec timeout{};
      timespec* tp = nullptr;
      std::int64_t wake = -1;
      if (!q.empty()) {
        // Wake early by the lateness seen so far, then spin to the deadline: a sleeping vCPU
        // wakes 20-150 us late here, growing with the sleep, which would skew short delays.
        wake = q.front().due - static_cast<std::int64_t>(late_ns) - kSpinMarginNs;
        if (wake <= now) {
          while (NowNs() < q.front().due) CpuRelax();
          continue;
        }
      } else if (!open) {
        wake = eof_due;
      }
      if (wake >= 0) {
        const std::int64_t wait = std::max<std::int64_t>(0, wake - now);
        timeout.tv_sec = static_cast<time_t>(wait / 1000000000LL);
        timeout.tv_nsec = static_cast<long>(wait % 1000000000LL);
        tp = &timeout;
      }
      const int rc = ppoll(&p, room ? 1 : 0, tp, nullptr);
      if (rc == 0 && !q.empty()) {  // a timed wake: learn how late this thread wakes
        const double lateness = static_cast<double>(std::max<std::int64_t>(0, NowNs() - wake));
        late_ns = 0.75 * late_ns + 0.25 * std::min(lateness, kMaxLateNs);
      }
      if (rc <= 0 || !room) continue;  // a chunk is due (or EINTR)
      const ssize_t n = recv(src_, buf.data(), buf.size(), MSG_DONTWAIT);
      if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      now = NowNs();
      if (n <= 0) {
        open = false;
        error = n < 0;
        eof_due = std::max(last_due, now + delay_ns);
        continue;
      }
      double depart = static_cast<double>(now);
      if (ns_per_byte > 0) {
        std::lock_guard<std::mutex> l(bucket_->mu);
        bucket_->tat = std::max(bucket_->tat, depart) + n * ns_per_byte;
        depart = std::max(depart, bucket_->tat - burst_ns);
      }
      Chunk ch;
      ch.data.assign(buf.data(), buf.data() + n);
      ch.due = std::max(last_due, static_cast<std::int64_t>(depart) + delay_ns);  // in order
      last_due = ch.due;
      queued += n;
      counters_->NoteQueued(static_cast<std::uint64_t>(queued));
      q.push_back(std::move(ch));
    }
  }

 private:
  struct Chunk {
    std::vector<char> data;
    std::int64_t due = 0;
  };

  static bool WriteAll(int fd, const std::vector<char>& data) {
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t w = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      off += static_cast<size_t>(w);
    }
    return true;
  }

  int src_, dst_;
  Shape shape_;
  std::shared_ptr<Bucket> bucket_;
  std::int64_t limit_;
  std::atomic<std::uint64_t>* bytes_;
  Counters* counters_;
};

}  // namespace

bool IsLoopback(const std::string& host) {
  try {
    LoopbackAddr(host, 0, "host");
    return true;
  } catch (const NetError&) {
    return false;
  }
}

// ---- LinkShaper ------------------------------------------------------------------------------

struct LinkShaper::Impl {
  struct Conn {
    std::mutex mu;
    int client = -1, target = -1;
    std::thread th;
    std::atomic<bool> done{false};
  };
  struct RouteState {
    Route route;
    SockAddr target;
    int listen_fd = -1;
    int port = 0;
    int target_ns_fd = -1;
    std::string target_ns_path;
    Counters counters;
    std::thread acceptor;
    std::mutex mu;
    std::list<std::unique_ptr<Conn>> conns;
    std::string last_error;
    void NoteError(const std::string& e) {
      std::lock_guard<std::mutex> l(mu);
      last_error = e;
    }
  };

  std::int64_t queue_limit = 0;
  std::vector<std::unique_ptr<RouteState>> routes;
  std::map<std::string, int> ns_fds;  // "" = the creating thread's namespace
  std::mutex buckets_mu;
  std::map<std::string, std::shared_ptr<Bucket>> buckets;  // by link name

  std::shared_ptr<Bucket> BucketFor(const std::string& link) {
    if (link.empty()) return std::make_shared<Bucket>();
    std::lock_guard<std::mutex> l(buckets_mu);
    auto& b = buckets[link];
    if (!b) b = std::make_shared<Bucket>();
    return b;
  }
  std::atomic<bool> started{false}, stopping{false};
  std::mutex stop_mu;

  int NsFd(const std::string& path, const std::string& what) {
    const std::string p = path.empty() ? "/proc/thread-self/ns/net" : path;
    auto it = ns_fds.find(path);
    if (it != ns_fds.end()) return it->second;
    const int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      throw NetError(what + ": cannot open network namespace " + p + ": " + ErrnoText(errno));
    ns_fds[path] = fd;
    return fd;
  }

  void AcceptLoop(RouteState* r) {
    for (;;) {
      const int c = accept4(r->listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (!stopping && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
          continue;
        }
        return;  // the listener was shut down (Stop)
      }
      std::lock_guard<std::mutex> l(r->mu);
      if (stopping) {
        close(c);
        return;
      }
      for (auto it = r->conns.begin(); it != r->conns.end();) {  // reap finished connections
        if ((*it)->done) {
          (*it)->th.join();
          it = r->conns.erase(it);
        } else {
          ++it;
        }
      }
      r->conns.push_back(std::make_unique<Conn>());
      Conn* conn = r->conns.back().get();
      conn->client = c;
      conn->th = std::thread([this, r, conn] { Relay(r, conn); });
    }
  }

  void Relay(RouteState* r, Conn* conn) {
    int target = -1;
    try {
      EnterNetns(r->target_ns_fd, r->target_ns_path, r->route.name);
      target = stopping ? -1 : ConnectWithin(r->target, kConnectTimeoutS);
      if (target < 0 && !stopping)
        r->NoteError("cannot connect to " + r->route.target_host + ":" +
                     std::to_string(r->route.target_port) + ": " + ErrnoText(errno));
    } catch (const NetError& e) {
      target = -1;
      r->NoteError(e.what());
    }
    {
      std::lock_guard<std::mutex> l(conn->mu);
      conn->target = target;
      if (target < 0 || stopping) {
        if (target >= 0) close(target);
        conn->target = -1;
        close(conn->client);
        conn->client = -1;
        r->counters.failed++;
        conn->done = true;
        return;
      }
    }
    r->counters.connections++;
    SetNoDelay(conn->client);
    SetNoDelay(target);
    Pump fwd(conn->client, target, r->route.forward, BucketFor(r->route.forward.link), queue_limit,
             &r->counters.fwd, &r->counters);
    Pump bwd(target, conn->client, r->route.backward, BucketFor(r->route.backward.link), queue_limit,
             &r->counters.bwd, &r->counters);
    std::thread back([&bwd] { bwd.Run(); });
    fwd.Run();
    back.join();
    {
      std::lock_guard<std::mutex> l(conn->mu);
      close(conn->client);
      close(conn->target);
      conn->client = conn->target = -1;
    }
    conn->done = true;
  }
};

LinkShaper::LinkShaper(std::vector<Route> routes, std::int64_t queue_limit_bytes)
    : impl_(new Impl) {
  if (queue_limit_bytes < kChunk)
    throw NetError("queue limit must be at least " + std::to_string(kChunk) + " bytes, got " +
                   std::to_string(queue_limit_bytes));
  if (routes.empty()) throw NetError("no routes");
  impl_->queue_limit = queue_limit_bytes;
  try {
    for (auto& route : routes) {
      auto r = std::make_unique<Impl::RouteState>();
      const std::string what = "route " + (route.name.empty() ? std::string("?") : route.name);
      if (route.listen_port < 0 || route.listen_port > 65535)
        throw NetError(what + ": listen port must be in [0, 65535], got " +
                       std::to_string(route.listen_port));
      if (route.target_port < 1 || route.target_port > 65535)
        throw NetError(what + ": target port must be in [1, 65535], got " +
                       std::to_string(route.target_port));
      CheckShape(route.forward, what + " (forward)");
      CheckShape(route.backward, what + " (backward)");
      const SockAddr listen_addr = LoopbackAddr(route.listen_host, route.listen_port, what);
      r->target = LoopbackAddr(route.target_host, route.target_port, what);
      const int listen_ns = impl_->NsFd(route.listen_netns, what);
      r->target_ns_fd = impl_->NsFd(route.target_netns, what);
      r->target_ns_path = route.target_netns.empty() ? "(the shaper's own)" : route.target_netns;
      // The listener is created by a thread of ours inside the listen namespace: a socket stays
      // in the namespace it was created in, and the caller's thread never changes namespace.
      std::string error;
      std::thread t([&] {
        try {
          EnterNetns(listen_ns, route.listen_netns, what);
          r->listen_fd = Listen(listen_addr, what + " (" + route.listen_host + ":" +
                                                 std::to_string(route.listen_port) + ")");
        } catch (const NetError& e) {
          error = e.what();
        }
      });
      t.join();
      if (!error.empty()) throw NetError(error);
      r->port = BoundPort(r->listen_fd);
      r->route = std::move(route);
      impl_->routes.push_back(std::move(r));
    }
  } catch (...) {
    for (auto& r : impl_->routes) close(r->listen_fd);
    for (auto& kv : impl_->ns_fds) close(kv.second);
    throw;
  }
}

LinkShaper::~LinkShaper() {
  Stop();
  for (auto& kv : impl_->ns_fds) close(kv.second);
}

void LinkShaper::Start() {
  std::lock_guard<std::mutex> l(impl_->stop_mu);
  if (impl_->started.exchange(true) || impl_->stopping) return;
  for (auto& r : impl_->routes) {
    Impl::RouteState* rs = r.get();
    rs->acceptor = std::thread([this, rs] { impl_->AcceptLoop(rs); });
  }
}

void LinkShaper::Stop() {
  std::lock_guard<std::mutex> l(impl_->stop_mu);
  if (impl_->stopping.exchange(true)) return;
  for (auto& r : impl_->routes) {
    shutdown(r->listen_fd, SHUT_RDWR);  // wakes accept()
    if (r->acceptor.joinable()) r->acceptor.join();
    close(r->listen_fd);
    std::lock_guard<std::mutex> rl(r->mu);
    for (auto& c : r->conns) {
      std::lock_guard<std::mutex> cl(c->mu);
      if (c->client >= 0) shutdown(c->client, SHUT_RDWR);
      if (c->target >= 0) shutdown(c->target, SHUT_RDWR);
    }
  }
  for (auto& r : impl_->routes) {  // join outside the lock: a relay thread may still note an error
    std::list<std::unique_ptr<Impl::Conn>> conns;
    {
      std::lock_guard<std::mutex> rl(r->mu);
      conns.swap(r->conns);
    }
    for (auto& c : conns) c->th.join();
  }
}

std::vector<int> LinkShaper::Ports() const {
  std::vector<int> out;
  for (auto& r : impl_->routes) out.push_back(r->port);
  return out;
}

std::vector<RouteStats> LinkShaper::Stats() const {
  std::vector<RouteStats> out;
  for (auto& r : impl_->routes) {
    RouteStats s;
    s.name = r->route.name;
    s.listen_port = r->port;
    s.connections = r->counters.connections;
    s.failed_connects = r->counters.failed;
    s.bytes_forward = r->counters.fwd;
    s.bytes_backward = r->counters.bwd;
    s.max_queued_bytes = r->counters.max_queued;
    {
      std::lock_guard<std::mutex> l(r->mu);
      s.last_error = r->last_error;
    }
    out.push_back(s);
  }
  return out;
}

// ---- probe server and client -------------------------------------------------------------------

namespace {

bool ReadFull(int fd, char* buf, size_t n) {
  size_t off = 0;
  while (off < n) {
    const ssize_t r = recv(fd, buf + off, n - off, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    off += static_cast<size_t>(r);
  }
  return true;
}

bool WriteFull(int fd, const char* buf, size_t n) {
  size_t off = 0;
  while (off < n) {
    const ssize_t w = send(fd, buf + off, n - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    off += static_cast<size_t>(w);
  }
  return true;
}

// Sends/receives `n` bytes in pieces of a shared zero buffer (`sink` for reads).
bool SendZeros(int fd, std::int64_t n, const std::vector<char>& zeros) {
  while (n > 0) {
    const size_t k = static_cast<size_t>(std::min<std::int64_t>(n, zeros.size()));
    if (!WriteFull(fd, zeros.data(), k)) return false;
    n -= static_cast<std::int64_t>(k);
  }
  return true;
}

bool Discard(int fd, std::int64_t n, std::vector<char>* sink) {
  while (n > 0) {
    const ssize_t r = recv(fd, sink->data(), static_cast<size_t>(std::min<std::int64_t>(n, sink->size())), 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    n -= r;
  }
  return true;
}

void PutU64(char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
std::uint64_t GetU64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

constexpr std::uint64_t kMaxProbeBytes = 1ULL << 34;

}  // namespace

struct ProbeServer::Impl {
  int fd = -1;
  int port = 0;
  std::thread acceptor;
  std::mutex mu;
  std::vector<int> clients;
  std::vector<std::thread> threads;
  bool stopped = false;

  void Serve(int c) {
    SetNoDelay(c);
    std::vector<char> buf(1 << 16, 0);
    char header[16];
    while (ReadFull(c, header, sizeof(header))) {
      const std::uint64_t payload = GetU64(header), reply = GetU64(header + 8);
      if (payload > kMaxProbeBytes || reply > kMaxProbeBytes) break;
      if (!Discard(c, static_cast<std::int64_t>(payload), &buf)) break;
      std::fill(buf.begin(), buf.end(), 0);
      if (!SendZeros(c, static_cast<std::int64_t>(reply), buf)) break;
    }
    shutdown(c, SHUT_RDWR);
  }
};

ProbeServer::ProbeServer(const std::string& host, int port) : impl_(new Impl) {
  const std::string what = "probe server " + host + ":" + std::to_string(port);
  impl_->fd = Listen(LoopbackAddr(host, port, what), what);
  impl_->port = BoundPort(impl_->fd);
  Impl* im = impl_.get();
  impl_->acceptor = std::thread([im] {
    for (;;) {
      const int c = accept4(im->fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;
      }
      std::lock_guard<std::mutex> l(im->mu);
      if (im->stopped) {
        close(c);
        return;
      }
      im->clients.push_back(c);
      im->threads.emplace_back([im, c] { im->Serve(c); });
    }
  });
}

ProbeServer::~ProbeServer() { Stop(); }

int ProbeServer::port() const { return impl_->port; }

void ProbeServer::Stop() {
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
    for (int c : impl_->clients) shutdown(c, SHUT_RDWR);
  }
  shutdown(impl_->fd, SHUT_RDWR);
  if (impl_->acceptor.joinable()) impl_->acceptor.join();
  for (auto& t : impl_->threads) t.join();
  for (int c : impl_->clients) close(c);
  close(impl_->fd);
}

std::vector<double> ProbeRequests(const std::string& host, int port, std::int64_t send_bytes,
                                  std::int64_t reply_bytes, int count, double timeout_s) {
  const std::string what = "probe " + host + ":" + std::to_string(port);
  if (send_bytes < 0 || reply_bytes < 0 || static_cast<std::uint64_t>(send_bytes) > kMaxProbeBytes ||
      static_cast<std::uint64_t>(reply_bytes) > kMaxProbeBytes)
    throw NetError(what + ": request sizes must be in [0, 2^34] bytes");
  if (count < 1) throw NetError(what + ": count must be >= 1");
  if (!(timeout_s > 0)) throw NetError(what + ": timeout must be > 0");
  const SockAddr a = LoopbackAddr(host, port, what);
  const int fd = ConnectWithin(a, timeout_s);
  if (fd < 0) throw NetError(what + ": cannot connect: " + ErrnoText(errno));
  SetNoDelay(fd);
  timeval tv;
  tv.tv_sec = static_cast<time_t>(timeout_s);
  tv.tv_usec = static_cast<suseconds_t>((timeout_s - tv.tv_sec) * 1e6);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::vector<char> buf(1 << 16, 0);
  std::vector<double> out;
  // header + the first part of the payload in one send (a small request is one segment)
  const size_t first = static_cast<size_t>(std::min<std::int64_t>(send_bytes, buf.size() - 16));
  for (int i = 0; i < count; ++i) {
    std::fill(buf.begin(), buf.end(), 0);
    PutU64(buf.data(), static_cast<std::uint64_t>(send_bytes));
    PutU64(buf.data() + 8, static_cast<std::uint64_t>(reply_bytes));
    const std::int64_t t0 = NowNs();
    bool ok = WriteFull(fd, buf.data(), 16 + first);
    std::fill(buf.begin(), buf.begin() + 16, 0);
    ok = ok && SendZeros(fd, send_bytes - static_cast<std::int64_t>(first), buf);
    ok = ok && Discard(fd, reply_bytes, &buf);
    const std::int64_t t1 = NowNs();
    if (!ok) {
      const int e = errno;
      close(fd);
      throw NetError(what + ": request " + std::to_string(i) + " failed: " +
                     (e == EAGAIN || e == EWOULDBLOCK ? std::string("timed out") : ErrnoText(e)));
    }
    out.push_back((t1 - t0) * 1e-9);
  }
  close(fd);
  return out;
}

}  // namespace net
}  // namespace tfe_accel
