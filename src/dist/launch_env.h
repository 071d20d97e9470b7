// Where this process sits in a multi-process job, read from the environment the standard
// launchers set: torchrun / r1 launch (RANK, WORLD_SIZE, LOCAL_RANK), SLURM's srun
// (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID), Open MPI's mpirun (OMPI_COMM_WORLD_*), and MPICH
// / Intel MPI (PMI_RANK, PMI_SIZE). The rendezvous point is MASTER_ADDR:MASTER_PORT in all cases.
// Torch-free.
#pragma once
#include <string>

namespace r1 {

struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;

  // Throws r1::Error naming the variable when one is malformed or inconsistent.
  static LaunchEnv from_environment();
  // R1_PROCESS_GROUP=1 makes even one process join a process group (scripts/gpu-check.sh's
  // one-GPU NCCL run).
  bool forced_group = false;
  bool distributed() const { return world_size > 1 || forced_group; }
  bool is_main() const { return rank == 0; }
};

}  // namespace r1
