#include "agent/monitor_set.h"

#include <pthread.h>

#include "agent/health_checks.h"
#include "google/protobuf/util/message_differencer.h"

namespace cloudha {

bool MonitorState::Record(const absl::Status& result, absl::Time now) {
  bool pass = result.ok();
  last_check_ = now;
  last_result_ = pass ? "ok" : std::string(result.message());
  if (!checked_) {
    checked_ = true;
    passing_ = pass;
    streak_ = 1;
    return !pass;  // starting out failing is a change from the assumed pass
  }
  if (pass == passing_) {
    ++streak_;
    against_ = 0;
    return false;
  }
  ++against_;
  if (against_ < (passing_ ? fall_ : rise_)) return false;
  passing_ = pass;
  streak_ = against_;
  against_ = 0;
  return true;
}

MonitorSet::Check MonitorSet::CheckFor(const v1::MonitorConfig& config) {
  switch (config.check_case()) {
    case v1::MonitorConfig::kExec: {
      std::vector<std::string> argv(config.exec().command().begin(),
                                    config.exec().command().end());
      return [argv](absl::Duration timeout) { return CheckCommand(argv, timeout); };
    }
    case v1::MonitorConfig::kTcp: {
      std::string address = config.tcp().address();
      return [address](absl::Duration timeout) { return CheckTcpConnect(address, timeout); };
    }
    case v1::MonitorConfig::kInterface: {
      std::string name = config.interface().name();
      return [name](absl::Duration) { return CheckInterface("/sys/class/net", name); };
    }
    default:
      return [](absl::Duration) { return absl::InvalidArgumentError("monitor has no check"); };
  }
}

MonitorSet::MonitorSet(std::vector<v1::MonitorConfig> configs, std::vector<Check> checks,
                       Clock* clock, std::function<void(const Change&)> on_change)
    : configs_(std::move(configs)),
      checks_(std::move(checks)),
      clock_(clock),
      on_change_(std::move(on_change)) {
  for (const auto& c : configs_) states_.emplace_back(c.rise(), c.fall());
}

MonitorSet::~MonitorSet() { Stop(); }

void MonitorSet::AdoptStates(const MonitorSet& previous) {
  absl::MutexLock theirs(&previous.mu_);
  absl::MutexLock mine(&mu_);
  for (size_t i = 0; i < configs_.size(); ++i) {
    for (size_t j = 0; j < previous.configs_.size(); ++j) {
      if (google::protobuf::util::MessageDifferencer::Equals(configs_[i], previous.configs_[j])) {
        states_[i] = previous.states_[j];
        break;
      }
    }
  }
}

void MonitorSet::Start() {
  for (size_t i = 0; i < configs_.size(); ++i) {
    threads_.emplace_back([this, i] {
      pthread_setname_np(pthread_self(), ("mon " + configs_[i].name()).substr(0, 15).c_str());
      Run(i);
    });
  }
}

void MonitorSet::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void MonitorSet::Run(size_t index) {
  const absl::Duration interval = absl::Milliseconds(configs_[index].interval_ms());
  const absl::Duration timeout = absl::Milliseconds(configs_[index].timeout_ms());
  absl::Time next = clock_->Now();
  while (!stop_.HasBeenNotified()) {
    Record(index, checks_[index](timeout));
    next += interval;
    absl::Time now = clock_->Now();
    if (next <= now) next = now + interval;
    if (!clock_->SleepUntil(next, stop_)) break;
  }
}

void MonitorSet::Record(size_t index, const absl::Status& result) {
  Change change;
  bool changed;
  {
    absl::MutexLock lock(&mu_);
    changed = states_[index].Record(result, clock_->Now());
    change = {configs_[index].name(), states_[index].passing(), states_[index].last_result()};
  }
  if (changed && on_change_) on_change_(change);
}

void MonitorSet::RecordForTest(size_t index, const absl::Status& result) { Record(index, result); }

uint32_t MonitorSet::penalty() const {
  absl::MutexLock lock(&mu_);
  uint32_t sum = 0;
  for (size_t i = 0; i < states_.size(); ++i) {
    if (!states_[i].passing()) sum += configs_[i].weight();
  }
  return sum;
}

bool MonitorSet::all_failing() const {
  absl::MutexLock lock(&mu_);
  if (states_.empty()) return false;
  for (const MonitorState& s : states_) {
    if (s.passing()) return false;
  }
  return true;
}

std::vector<v1::MonitorStatus> MonitorSet::Status(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::MonitorStatus> out;
  for (size_t i = 0; i < states_.size(); ++i) {
    v1::MonitorStatus s;
    s.set_name(configs_[i].name());
    switch (configs_[i].check_case()) {
      case v1::MonitorConfig::kExec:
        s.set_kind("exec");
        break;
      case v1::MonitorConfig::kTcp:
        s.set_kind("tcp");
        break;
      default:
        s.set_kind("interface");
    }
    s.set_passing(states_[i].passing());
    s.set_weight(configs_[i].weight());
    s.set_streak(states_[i].streak());
    s.set_last_result(states_[i].checked() ? states_[i].last_result() : "not checked yet");
    s.set_last_check_age_ms(states_[i].checked()
                                ? absl::ToInt64Milliseconds(now - states_[i].last_check())
                                : -1);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace cloudha
