# Two network profiles (var.network_profile), one variable apart:
#
# - public (default, low cost): the tasks run in the public subnets with a public IP
#   and reach AWS APIs through the internet gateway. Their security group admits only
#   the ALB's security group on the container port, so nothing else can reach them;
#   no NAT gateway is created.
# - private: the tasks run in private subnets with no public IP and leave through a NAT
#   gateway (fixed egress addresses, at a NAT's cost). One NAT is shared by both AZs
#   unless nat_gateway_per_az: a single NAT's AZ failing cuts egress for the other
#   AZ's tasks too.
#
# Both profiles keep the same subnets, so switching moves only the tasks and routes.
# A free S3 gateway endpoint carries model reads and ECR's image layers either way.

locals {
  tasks_in_public_subnets = var.network_profile == "public"
  nat_gateway_count       = local.tasks_in_public_subnets ? 0 : (var.nat_gateway_per_az ? length(local.azs) : 1)
  task_subnet_ids         = local.tasks_in_public_subnets ? aws_subnet.public[*].id : aws_subnet.private[*].id
}

resource "aws_vpc" "this" {
  # checkov:skip=CKV2_AWS_11: flow logs would cost more than the rest of this small network; enable them account-wide when an audit requires it.
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = { Name = local.name }
}

# Take every rule away from the default security group, so nothing lands in it by accident.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${local.name}-default-deny" }
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = local.name }
}

resource "aws_subnet" "public" {
  count = length(local.azs)

  vpc_id            = aws_vpc.this.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 4, count.index)
  # Public addresses are given explicitly (ALB, NAT, tasks in the public profile), never by default.
  map_public_ip_on_launch = false

  tags = { Name = "${local.name}-public-${local.azs[count.index]}", Tier = "public" }
}

resource "aws_subnet" "private" {
  count = length(local.azs)

  vpc_id            = aws_vpc.this.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 4, count.index + 8)

  tags = { Name = "${local.name}-private-${local.azs[count.index]}", Tier = "private" }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${local.name}-public" }
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count = length(local.azs)

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_eip" "nat" {
  count = local.nat_gateway_count

  domain = "vpc"
  tags   = { Name = "${local.name}-nat-${count.index}" }
}

resource "aws_nat_gateway" "this" {
  count = local.nat_gateway_count

  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id
  tags          = { Name = "${local.name}-nat-${count.index}" }

  depends_on = [aws_internet_gateway.this]
}

# One private route table per AZ, so switching nat_gateway_per_az only changes routes.
resource "aws_route_table" "private" {
  count = length(local.azs)

  vpc_id = aws_vpc.this.id
  tags   = { Name = "${local.name}-private-${local.azs[count.index]}" }
}

resource "aws_route" "private_nat" {
  count = local.nat_gateway_count > 0 ? length(local.azs) : 0

  route_table_id         = aws_route_table.private[count.index].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[var.nat_gateway_per_az ? count.index : 0].id
}

resource "aws_route_table_association" "private" {
  count = length(local.azs)

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

# Free, and keeps image-layer pulls and model reads off the NAT's per-GB charge and
# inside AWS's network in both profiles.
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = concat([aws_route_table.public.id], aws_route_table.private[*].id)

  tags = { Name = "${local.name}-s3" }
}

# ---------------------------------------------------------------- security groups

resource "aws_security_group" "alb" {
  name        = "${local.name}-alb"
  description = "Public load balancer of ${local.name}"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${local.name}-alb" }
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  # checkov:skip=CKV_AWS_260: a public web service's load balancer must accept HTTP from the internet (it redirects to HTTPS when a domain is set).
  for_each = toset(var.allowed_ingress_cidrs)

  security_group_id = aws_security_group.alb.id
  description       = "HTTP from clients"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each = local.tls_enabled ? toset(var.allowed_ingress_cidrs) : toset([])

  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from clients"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

# The ALB may talk to the tasks' port and nothing else.
resource "aws_vpc_security_group_egress_rule" "alb_to_service" {
  security_group_id            = aws_security_group.alb.id
  description                  = "Forward to the service's tasks"
  referenced_security_group_id = aws_security_group.service.id
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
}

# The only ingress of the tasks, in either network profile: the ALB's security group on
# the container port. A public IP (public profile) therefore exposes nothing.
resource "aws_security_group" "service" {
  name        = "${local.name}-service"
  description = "Fargate tasks of ${local.name}; reachable only from the ALB"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${local.name}-service" }
}

resource "aws_vpc_security_group_ingress_rule" "service_from_alb" {
  security_group_id            = aws_security_group.service.id
  description                  = "Requests and health checks from the ALB"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
}

# HTTPS only: ECR, S3, CloudWatch metrics and logs are all AWS APIs on 443.
resource "aws_vpc_security_group_egress_rule" "service_https" {
  security_group_id = aws_security_group.service.id
  description       = "AWS APIs (ECR, S3, CloudWatch) over HTTPS"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}
