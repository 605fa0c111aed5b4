// The admission component's names (admission/admission.h) as the balancer's code uses them:
// the balancer asks admission through the interface `Admission` and reads its value types.
#pragma once

#include "admission/admission.h"

namespace balancer {

using admission::Admission;
using admission::AdmissionCounters;
using admission::AdmissionDecision;
using admission::AdmissionGroupCount;
using admission::AdmissionLimits;
using admission::AdmissionStatus;
using admission::Duration;
using admission::EmulationSwitch;
using admission::RedisAdmissionOptions;
using admission::StreamInfo;
using admission::validate_admission_limits;
using admission::ViewerKey;
using admission::ViewerSource;

}  // namespace balancer
