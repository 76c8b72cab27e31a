// pybind11 glue for the link shaper and its probes (cc/net/link_shaper.h). Every blocking call
// releases the GIL; NetError becomes tfe_accel._native.NetError (an OSError).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "../net/link_shaper.h"
#include "native_registry.h"

namespace py = pybind11;

namespace tfe_accel {
namespace py_glue {

namespace {

template <typename T>
T Field(const py::dict& d, const char* key, const std::string& where, T fallback, bool required) {
  if (!d.contains(key)) {
    if (required) throw py::value_error(where + ": missing '" + key + "'");
    return fallback;
  }
  try {
    return d[key].cast<T>();
  } catch (const py::cast_error&) {
    throw py::type_error(where + ": '" + key + "' has the wrong type (" +
                         py::str(py::type::of(d[key])).cast<std::string>() + ")");
  }
}

net::Shape ShapeFrom(const py::dict& route, const char* key, const std::string& where) {
  net::Shape s;
  if (!route.contains(key)) return s;
  if (!py::isinstance<py::dict>(route[key]))
    throw py::type_error(where + ": '" + key + "' must be a dict {delay_s, rate_bytes_per_s, burst_bytes}");
  const py::dict d = route[key].cast<py::dict>();
  const std::string w = where + " " + key;
  s.delay_s = Field<double>(d, "delay_s", w, 0.0, false);
  s.rate_bytes_per_s = Field<double>(d, "rate_bytes_per_s", w, 0.0, false);
  s.burst_bytes = Field<std::int64_t>(d, "burst_bytes", w, s.burst_bytes, false);
  s.link = Field<std::string>(d, "link", w, "", false);
  return s;
}

net::Route RouteFrom(const py::handle& obj, size_t index) {
  const std::string where = "route " + std::to_string(index);
  if (!py::isinstance<py::dict>(obj)) throw py::type_error(where + " must be a dict");
  const py::dict d = py::reinterpret_borrow<py::dict>(obj);
  net::Route r;
  r.name = Field<std::string>(d, "name", where, where, false);
  const std::string w = "route " + r.name;
  r.listen_netns = Field<std::string>(d, "listen_netns", w, "", false);
  r.listen_host = Field<std::string>(d, "listen_host", w, "127.0.0.1", false);
  r.listen_port = Field<int>(d, "listen_port", w, 0, false);
  r.target_netns = Field<std::string>(d, "target_netns", w, "", false);
  r.target_host = Field<std::string>(d, "target_host", w, "127.0.0.1", false);
  r.target_port = Field<int>(d, "target_port", w, 0, true);
  r.forward = ShapeFrom(d, "forward", w);
  r.backward = ShapeFrom(d, "backward", w);
  return r;
}

}  // namespace

void RegisterNet(py::module_& m) {
  py::register_exception<net::NetError>(m, "NetError", PyExc_OSError);

  py::class_<net::LinkShaper>(m, "LinkShaper",
                              "A user-space link shaper on loopback (cc/net/link_shaper.h). Routes: "
                              "dicts {name, listen_netns, listen_host, listen_port, target_netns, "
                              "target_host, target_port, forward, backward}; forward/backward: "
                              "{delay_s, rate_bytes_per_s, burst_bytes, link} (directions with one link name share a token bucket). Listeners are bound on return.")
      .def(py::init([](const py::list& routes, std::int64_t queue_limit_bytes) {
             std::vector<net::Route> rs;
             for (size_t i = 0; i < routes.size(); ++i) rs.push_back(RouteFrom(routes[i], i));
             py::gil_scoped_release release;
             return new net::LinkShaper(std::move(rs), queue_limit_bytes);
           }),
           py::arg("routes"), py::arg("queue_limit_bytes") = std::int64_t(8) << 20)
      .def("start", &net::LinkShaper::Start, py::call_guard<py::gil_scoped_release>())
      .def("stop", &net::LinkShaper::Stop, py::call_guard<py::gil_scoped_release>())
      .def("ports", &net::LinkShaper::Ports)
      .def("stats", [](const net::LinkShaper& s) {
        py::list out;
        for (const auto& st : s.Stats()) {
          py::dict d;
          d["name"] = st.name;
          d["listen_port"] = st.listen_port;
          d["connections"] = st.connections;
          d["failed_connects"] = st.failed_connects;
          d["bytes_forward"] = st.bytes_forward;
          d["bytes_backward"] = st.bytes_backward;
          d["max_queued_bytes"] = st.max_queued_bytes;
          d["last_error"] = st.last_error;
          out.append(d);
        }
        return out;
      });

  py::class_<net::ProbeServer>(m, "ProbeServer",
                               "Answers probe requests (16-byte header: payload and reply lengths) "
                               "on a loopback address; port 0 = any free port.")
      .def(py::init<const std::string&, int>(), py::arg("host") = "127.0.0.1", py::arg("port") = 0,
           py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("port", &net::ProbeServer::port)
      .def("stop", &net::ProbeServer::Stop, py::call_guard<py::gil_scoped_release>());

  m.def("probe_requests", &net::ProbeRequests, py::arg("host"), py::arg("port"),
        py::arg("send_bytes"), py::arg("reply_bytes"), py::arg("count") = 1,
        py::arg("timeout_s") = 30.0, py::call_guard<py::gil_scoped_release>(),
        "Seconds per request (first byte sent to last byte received), over one connection.");
  m.def("is_loopback", &net::IsLoopback, py::arg("host"));
}

}  // namespace py_glue
}  // namespace tfe_accel
