#include <infiniband/verbs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static long rss(void){char l[256];long v=-1;FILE*f=fopen("/proc/self/status","r");while(fgets(l,256,f))if(!strncmp(l,"VmRSS:",6))v=atol(l+6);fclose(f);return v;}
int main(int argc,char**argv){int n=200,wr=atoi(argv[1]),inl=atoi(argv[2]);struct ibv_device**d=ibv_get_device_list(NULL);struct ibv_context*c=ibv_open_device(d[0]);struct ibv_pd*pd=ibv_alloc_pd(c);struct ibv_cq*cq=ibv_create_cq(c,4096,0,0,0);
struct ibv_srq_init_attr sa={.attr={.max_wr=1024,.max_sge=1}};struct ibv_srq*srq=ibv_create_srq(pd,&sa);
long r0=rss();for(int i=0;i<n;i++){struct ibv_qp_init_attr a={.send_cq=cq,.recv_cq=cq,.srq=srq,.qp_type=IBV_QPT_RC,.cap={.max_send_wr=wr,.max_send_sge=2,.max_inline_data=inl}};if(!ibv_create_qp(pd,&a)){perror("qp");return 1;}}
printf("max_send_wr %d inline %d: %.1f KiB RSS per QP\n",wr,inl,(double)(rss()-r0)/n);return 0;}
