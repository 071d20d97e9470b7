#include "dist/launch_env.h"

#include <cstdlib>

#include "util/error.h"

namespace r1 {
namespace {

// The first of `names` that is set, parsed as a non-negative integer; -1 when none is set.
int int_from_env(std::initializer_list<const char*> names) {
  for (const char* name : names) {
    const char* value = std::getenv(name);
    if (!value || !*value) continue;
    char* end = nullptr;
    const long v = std::strtol(value, &end, 10);
    if (*end != '\0' || v < 0 || v > 1 << 20)
      throw Error(std::string("environment variable ") + name + "='" + value + "' is not a non-negative integer");
    return static_cast<int>(v);
  }
  return -1;
}

}  // namespace

LaunchEnv LaunchEnv::from_environment() {
  LaunchEnv env;
  const int rank = int_from_env({"RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK"});
  const int world = int_from_env({"WORLD_SIZE", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"});
  const int local = int_from_env({"LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"});
  if (world > 0) env.world_size = world;
  if (rank >= 0) env.rank = rank;
  env.local_rank = local >= 0 ? local : 0;
  if (env.world_size < 1 || env.rank >= env.world_size)
    throw Error("RANK " + std::to_string(env.rank) + " is not below WORLD_SIZE " + std::to_string(env.world_size));
  if (const char* addr = std::getenv("MASTER_ADDR"); addr && *addr) env.master_addr = addr;
  const int port = int_from_env({"MASTER_PORT"});
  if (port == 0 || port > 65535) throw Error("MASTER_PORT=" + std::to_string(port) + " is not a TCP port");
  if (port > 0) env.master_port = port;
  if (const char* forced = std::getenv("R1_PROCESS_GROUP")) env.forced_group = std::string(forced) == "1";
  if (env.distributed() && !std::getenv("MASTER_ADDR") && !std::getenv("RANK"))
    throw Error("WORLD_SIZE > 1 (from the launcher's environment) but MASTER_ADDR is not set: export MASTER_ADDR "
                "and MASTER_PORT of rank 0's machine");
  return env;
}

}  // namespace r1
