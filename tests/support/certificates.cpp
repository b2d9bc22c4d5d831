#include "support/certificates.hpp"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "support/process.hpp"

namespace vidnode::test {

namespace {

void run_or_throw(const std::vector<std::string>& argv) {
  auto r = run_command(argv, std::chrono::seconds{60});
  if (r.status != 0) {
    std::string command;
    for (const auto& arg : argv)
      command += arg + " ";
    throw std::runtime_error(command + "failed: " + r.err);
  }
}

} // namespace

certificates::certificates(const std::vector<std::string>& args) {
  make(args);
}

std::string certificates::path(const std::string& file) const {
  return dir_.path() + "/" + file;
}

void certificates::make(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"/bin/bash", MAKE_CERTS_SCRIPT};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(dir_.path());
  run_or_throw(argv);
}

void certificates::issue_with_dates(const std::string& name,
                                    const std::string& not_before,
                                    const std::string& not_after) const {
  auto db = path("ca-db-" + name);
  std::filesystem::create_directories(db);
  std::ofstream{db + "/index.txt"};
  std::ofstream{db + "/serial"} << "01\n";
  write("ca-" + name + ".cnf",
        "[ca]\ndefault_ca = test_ca\n"
        "[test_ca]\ndatabase = "
          + db + "/index.txt\nnew_certs_dir = " + db + "\nserial = " + db
          + "/serial\ndefault_md = sha256\npolicy = any\n"
            "unique_subject = no\nx509_extensions = usage\n"
            "[any]\ncommonName = supplied\n"
            "[usage]\nbasicConstraints = critical, CA:FALSE\n"
            "keyUsage = critical, digitalSignature\n"
            "extendedKeyUsage = serverAuth, clientAuth\n");
  run_or_throw({"/usr/bin/env", "openssl", "genpkey", "-algorithm", "EC",
                "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                path(name + ".key")});
  run_or_throw({"/usr/bin/env", "openssl", "req", "-new", "-key",
                path(name + ".key"), "-subj", "/CN=" + name, "-out",
                path(name + ".csr")});
  run_or_throw({"/usr/bin/env", "openssl", "ca", "-batch", "-notext", "-config",
                path("ca-" + name + ".cnf"), "-cert", path("ca.pem"),
                "-keyfile", path("ca.key"), "-in", path(name + ".csr"), "-out",
                path(name + ".pem"), "-startdate", not_before, "-enddate",
                not_after});
}

void certificates::write(const std::string& file,
                         const std::string& text) const {
  std::ofstream out{path(file)};
  out << text;
  if (!out)
    throw std::runtime_error("cannot write " + path(file));
}

std::vector<std::string> certificates::flags(const std::string& name) const {
  return {"--tls-cert",        path(name + ".pem"), "--tls-key",
          path(name + ".key"), "--tls-ca",          path("ca.pem")};
}

std::vector<std::string>
certificates::flags_trusting_also(const std::string& name,
                                  const certificates& other) const {
  std::ifstream ours{path("ca.pem")};
  std::ifstream theirs{other.path("ca.pem")};
  std::stringstream both;
  both << ours.rdbuf() << theirs.rdbuf();
  write("both.pem", both.str());
  auto result = flags(name);
  result.back() = path("both.pem");
  return result;
}

} // namespace vidnode::test
