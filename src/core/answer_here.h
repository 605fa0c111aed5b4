// "Run there, answer here": work handed to another thread (a worker, or another loop) whose
// result comes back to the loop that asked, in one place with its lifetime guard. The answer
// runs on `here` only while the asker lives: an asker that can go away before its answers
// arrive owns a Lifetime and passes watch(); one that outlives its loop passes
// LifetimeWatch::forever(). `There` and `Here` are anything with post(std::function<void()>)
// from any thread (EventLoop, WorkerThread, LoopPoster).
#pragma once

#include <functional>
#include <memory>
#include <utility>

namespace core {

class LifetimeWatch {
 public:
  static LifetimeWatch forever() { return LifetimeWatch(); }
  // On the asker's thread (where its Lifetime ends).
  bool alive() const { return forever_ || !alive_.expired(); }

 private:
  friend class Lifetime;
  LifetimeWatch() = default;
  explicit LifetimeWatch(std::weak_ptr<const char> alive)
      : alive_(std::move(alive)), forever_(false) {}
  std::weak_ptr<const char> alive_;
  bool forever_ = true;
};

// Owned by an asker, on its thread: answers that arrive after it ends are dropped.
class Lifetime {
 public:
  Lifetime() = default;
  Lifetime(const Lifetime&) = delete;
  Lifetime& operator=(const Lifetime&) = delete;
  LifetimeWatch watch() const { return LifetimeWatch(alive_); }

 private:
  std::shared_ptr<const char> alive_ = std::make_shared<const char>(0);
};

// A callable that takes a result on any thread and runs answer(result) on `here` later
// (never inline), while `asker` lives.
template <class Here, class Answer>
auto reply_on(Here& here, LifetimeWatch asker, Answer answer) {
  return [&here, asker = std::move(asker), answer = std::move(answer)](auto result) mutable {
    here.post([asker, answer = std::move(answer), result = std::move(result)]() mutable {
      if (asker.alive()) answer(std::move(result));
    });
  };
}

// work() runs on `there`; answer(its result) on `here`, while `asker` lives.
template <class There, class Here, class Work, class Answer>
void run_there_answer_here(There& there, Here& here, LifetimeWatch asker, Work work,
                           Answer answer) {
  there.post(
      [work = std::move(work),
       reply = reply_on(here, std::move(asker), std::move(answer))]() mutable { reply(work()); });
}

// For work that answers later on its own thread: start(reply) runs on `there` and calls
// reply(result) once, from `there`; answer(result) runs on `here`, while `asker` lives.
template <class There, class Here, class Start, class Answer>
void ask_there_answer_here(There& there, Here& here, LifetimeWatch asker, Start start,
                           Answer answer) {
  there.post([start = std::move(start),
              reply = reply_on(here, std::move(asker), std::move(answer))]() mutable {
    start(std::move(reply));
  });
}

}  // namespace core
